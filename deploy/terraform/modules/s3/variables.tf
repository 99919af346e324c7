variable "name" {
  description = "Name prefix, e.g. emporium-prod; bucket names add the account id to be globally unique."
  type        = string
}

variable "force_destroy" {
  description = "Allow `terraform destroy` to empty the buckets (dev only: invoices and backups are records)."
  type        = bool
  default     = false
}

variable "invoice_retention_days" {
  description = "Days an invoice PDF is kept (tax law: 10 years in Germany, 6 in the UK...)."
  type        = number
  default     = 3650
}

variable "invoice_archive_after_days" {
  description = "Days after which invoices move to Glacier Instant Retrieval (cost knob; still readable at once)."
  type        = number
  default     = 365
}

variable "backup_retention_days" {
  description = "Days a logical backup (scripts/backup-postgres.sh output) is kept."
  type        = number
  default     = 35
}

variable "noncurrent_version_retention_days" {
  description = "Days an overwritten or deleted object version is kept (undo window for mistakes and ransomware)."
  type        = number
  default     = 30
}

variable "access_log_retention_days" {
  description = "Days the S3 server access logs are kept."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
