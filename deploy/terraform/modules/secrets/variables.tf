variable "environment" {
  description = "Environment name: secrets are named emporium/<environment>/<key>."
  type        = string
}

variable "contexts" {
  description = "Contexts with a database (one <context>-database-url secret each)."
  type        = list(string)
}

variable "database_urls" {
  description = "postgres:// URL of each context's database, by context (from the rds module)."
  type        = map(string)
  sensitive   = true
}

variable "redis_url" {
  description = "rediss:// URL of the cache (from the elasticache module)."
  type        = string
  sensitive   = true
}

variable "amqp_url" {
  description = "amqps:// URL of the broker (from the mq module)."
  type        = string
  sensitive   = true
}

variable "smtp_url" {
  description = "SMTP relay URL (smtps://user:pass@host:465 or smtp://user:pass@host:587?tls=required). Empty: the secret is created without a value and the operator puts one (see docs/deploy.md); notifications cannot start until then."
  type        = string
  default     = ""
  sensitive   = true
}

variable "recovery_window_days" {
  description = "Days a deleted secret can still be restored (0 deletes at once: dev only)."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
