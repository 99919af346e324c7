variable "region" {
  description = "AWS region of the environment (the bootstrap's region)."
  type        = string
}

variable "backup_region" {
  description = "Region RDS automated backups are copied to (when the environment enables it)."
  type        = string
}

variable "availability_zones" {
  description = "Three zones of the region."
  type        = list(string)
}

variable "eks_public_access_cidrs" {
  description = "Addresses allowed to call the Kubernetes API from the internet; empty: the API is private (VPN, bastion or in-VPC runner)."
  type        = list(string)
  default     = []
}

variable "eks_admin_principal_arns" {
  description = "IAM roles given cluster-admin (the CI deploy role, the operators' SSO role)."
  type        = list(string)
  default     = []
}

variable "smtp_url" {
  description = "SMTP relay URL for notifications; leave empty and put it into Secrets Manager by hand to keep it out of the state (docs/deploy.md)."
  type        = string
  default     = ""
  sensitive   = true
}
