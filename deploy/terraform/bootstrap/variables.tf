variable "region" {
  description = "Region of the state bucket, the lock table and the image repository (the environments' region)."
  type        = string
  default     = "eu-central-1"
}

variable "state_bucket_name" {
  description = "State bucket name; empty: emporium-tfstate-<account id>-<region>."
  type        = string
  default     = ""
}

variable "lock_table_name" {
  description = "DynamoDB table of the state locks."
  type        = string
  default     = "emporium-terraform-locks"
}

variable "github_repository" {
  description = "owner/name of the GitHub repository whose Actions deploy (main branch and the staging/production environments); empty: no CI role."
  type        = string
  default     = ""

  validation {
    condition     = var.github_repository == "" || can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be owner/name, e.g. acme/emporium."
  }
}

variable "ecr_push_principal_arns" {
  description = "Other IAM roles allowed to push images (e.g. a Jenkins agent role); the GitHub CI role is added by itself. Nodes pull with their node role."
  type        = list(string)
  default     = []
}

variable "state_version_retention_days" {
  description = "Days old state versions are kept (undo for a bad apply or a corrupted state)."
  type        = number
  default     = 90
}

variable "enable_cloudtrail" {
  description = "An account-wide, multi-region CloudTrail trail (false when an organization trail already covers the account)."
  type        = bool
  default     = true
}

variable "audit_log_retention_days" {
  description = "Days the CloudTrail log files are kept (Glacier Instant Retrieval after 90)."
  type        = number
  default     = 2555
}
