variable "name" {
  description = "Instance identifier and name prefix, e.g. emporium-prod."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the instance."
  type        = string
}

variable "subnet_ids" {
  description = "Isolated data subnets, one per zone."
  type        = list(string)
}

variable "allowed_security_group_ids" {
  description = "Security groups allowed to connect on 5432 (the EKS cluster security group)."
  type        = list(string)
}

variable "contexts" {
  description = "Bounded contexts that get a database and a login role of their own (same name for both)."
  type        = list(string)
  default     = ["identity", "catalog", "inventory", "cart", "ordering", "payments", "notifications"]
}

variable "engine_version" {
  description = "PostgreSQL major version (minor upgrades are applied automatically in the maintenance window)."
  type        = string
  default     = "16"
}

variable "instance_class" {
  description = "Instance size: the main cost knob (db.t4g.medium in dev, db.r6g.large and up in prod)."
  type        = string
}

variable "allocated_storage_gib" {
  description = "Initial gp3 storage."
  type        = number
  default     = 50
}

variable "max_allocated_storage_gib" {
  description = "Ceiling for storage autoscaling."
  type        = number
  default     = 500
}

variable "multi_az" {
  description = "A synchronous standby in another zone with automatic failover (prod)."
  type        = bool
}

variable "backup_retention_days" {
  description = "Days of automated backups and point-in-time recovery (1-35)."
  type        = number
  default     = 7

  validation {
    condition     = var.backup_retention_days >= 7 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be between 7 and 35."
  }
}

variable "backup_window" {
  description = "Daily snapshot window (UTC), outside the maintenance window."
  type        = string
  default     = "02:00-03:00"
}

variable "maintenance_window" {
  description = "Weekly maintenance window (UTC)."
  type        = string
  default     = "sun:03:30-sun:04:30"
}

variable "deletion_protection" {
  description = "Refuse to delete the instance (on in every environment; turn off deliberately before a destroy)."
  type        = bool
  default     = true
}

variable "performance_insights_retention_days" {
  description = "Performance Insights retention: 7 is free; 31+ are paid tiers."
  type        = number
  default     = 7
}

variable "monitoring_interval_seconds" {
  description = "Enhanced Monitoring granularity (0 turns it off)."
  type        = number
  default     = 60
}

variable "log_min_duration_ms" {
  description = "Statements slower than this are logged (to CloudWatch Logs through the postgresql log export)."
  type        = number
  default     = 500
}

variable "backup_replication_enabled" {
  description = "Copy automated backups (snapshots and transaction logs) to the backup region, for point-in-time recovery there if the primary region is lost."
  type        = bool
  default     = false
}

variable "backup_replication_retention_days" {
  description = "Retention of the replicated backups in the backup region."
  type        = number
  default     = 7
}

variable "log_retention_days" {
  description = "Days the exported PostgreSQL logs are kept in CloudWatch Logs."
  type        = number
  default     = 365
}

variable "database_url_options" {
  description = "Query string of the database URLs. sslmode=require encrypts without checking the server certificate; with the RDS CA bundle mounted in the pods use \"sslmode=verify-full&sslrootcert=/etc/rds/global-bundle.pem\"."
  type        = string
  default     = "sslmode=require"
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
