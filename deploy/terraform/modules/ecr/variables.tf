variable "repository_name" {
  description = "Repository of the one Emporium image (every context runs it with `serve --service <name>`), e.g. emporium/prod."
  type        = string
  default     = "emporium"
}

variable "keep_release_images" {
  description = "Release images (tags starting with v, e.g. v1.4.2) kept; older ones expire."
  type        = number
  default     = 50
}

variable "keep_other_images" {
  description = "Other tagged images (commit SHAs from main, staging builds) kept."
  type        = number
  default     = 30
}

variable "untagged_expiry_days" {
  description = "Days an untagged image (a superseded multi-arch index's children, a failed push) is kept."
  type        = number
  default     = 7
}

variable "push_principal_arns" {
  description = "IAM roles allowed to push (the CI role). Nodes pull through their node role's ECR read-only policy."
  type        = list(string)
  default     = []
}

variable "force_delete" {
  description = "Allow deleting the repository with images in it (never in prod)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
