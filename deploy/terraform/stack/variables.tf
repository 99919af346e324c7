variable "environment" {
  description = "dev, staging or prod: names resources (emporium-<environment>) and secrets (emporium/<environment>/<key>)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.environment))
    error_message = "environment must be lower-case letters, digits and dashes (2-16 characters)."
  }
}

variable "availability_zones" {
  description = "Three availability zones of the region."
  type        = list(string)
}

variable "vpc_cidr" {
  description = "VPC range (/16)."
  type        = string
}

variable "nat_gateway_mode" {
  description = "single (dev) or per_az (staging, prod)."
  type        = string
}

variable "kubernetes_version" {
  description = "EKS Kubernetes version."
  type        = string
}

variable "eks_endpoint_public_access" {
  description = "Public Kubernetes API endpoint (restricted to eks_public_access_cidrs)."
  type        = bool
}

variable "eks_public_access_cidrs" {
  description = "Who may call the public API endpoint."
  type        = list(string)
  default     = []
}

variable "eks_admin_principal_arns" {
  description = "IAM principals given cluster-admin (CI deploy role, operators)."
  type        = list(string)
  default     = []
}

variable "node_groups" {
  description = "Managed node groups (see the eks module)."
  type = map(object({
    instance_types = list(string)
    capacity_type  = optional(string, "ON_DEMAND")
    ami_type       = optional(string, "AL2023_x86_64_STANDARD")
    min_size       = number
    max_size       = number
    desired_size   = number
    disk_size_gib  = optional(number, 50)
    labels         = optional(map(string), {})
    taints = optional(list(object({
      key    = string
      value  = string
      effect = string
    })), [])
  }))
}

variable "rds" {
  description = "RDS PostgreSQL settings (see the rds module)."
  type = object({
    instance_class              = string
    engine_version              = optional(string, "16")
    allocated_storage_gib       = optional(number, 50)
    max_allocated_storage_gib   = optional(number, 500)
    multi_az                    = bool
    backup_retention_days       = optional(number, 7)
    deletion_protection         = optional(bool, true)
    performance_insights_days   = optional(number, 7)
    monitoring_interval_seconds = optional(number, 60)
    backup_replication_enabled  = optional(bool, false)
  })
}

variable "redis" {
  description = "ElastiCache Redis settings (see the elasticache module)."
  type = object({
    node_type               = string
    replicas                = number
    snapshot_retention_days = optional(number, 1)
  })
}

variable "mq" {
  description = "Amazon MQ for RabbitMQ settings (see the mq module)."
  type = object({
    instance_type = string
    cluster       = bool
  })
}

variable "s3" {
  description = "Bucket settings (see the s3 module)."
  type = object({
    force_destroy                     = optional(bool, false)
    invoice_retention_days            = optional(number, 3650)
    backup_retention_days             = optional(number, 35)
    noncurrent_version_retention_days = optional(number, 30)
  })
  default = {}
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention of flow logs, control-plane, PostgreSQL and Redis logs."
  type        = number
  default     = 365
}

variable "secrets_recovery_window_days" {
  description = "Days a deleted secret stays restorable."
  type        = number
  default     = 30
}

variable "smtp_url" {
  description = "SMTP relay URL; empty: the operator puts it into emporium/<environment>/smtp-url."
  type        = string
  default     = ""
  sensitive   = true
}

variable "app_namespace" {
  description = "Kubernetes namespace of the Emporium workloads (IRSA trust of the invoices and backups roles)."
  type        = string
}

variable "ecr_repository_name" {
  description = "ECR repository of the Emporium image, made by ../bootstrap."
  type        = string
  default     = "emporium"
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
