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

variable "ecr_push_principal_arns" {
  description = "IAM roles allowed to push images (the CI role); nodes pull with their node role."
  type        = list(string)
  default     = []
}

variable "state_version_retention_days" {
  description = "Days old state versions are kept (undo for a bad apply or a corrupted state)."
  type        = number
  default     = 90
}
