output "state_bucket" {
  description = "The environments' backend bucket: terraform init -backend-config=\"bucket=<this>\"."
  value       = aws_s3_bucket.state.id
}

output "lock_table" {
  description = "The environments' backend lock table (backend.hcl dynamodb_table)."
  value       = aws_dynamodb_table.locks.name
}

output "state_kms_key_arn" {
  description = "KMS key of the state (backend.hcl kms_key_id)."
  value       = aws_kms_key.state.arn
}

output "image_repository" {
  description = "ECR repository of the Emporium image (push here; the overlays' images: newName)."
  value       = module.ecr.repository_url
}

output "ci_deploy_role_arn" {
  description = "Role GitHub Actions assumes (vars.AWS_DEPLOY_ROLE_ARN); list it in envs/*/terraform.tfvars eks_admin_principal_arns so it may deploy. Empty without github_repository."
  value       = one(aws_iam_role.ci_deploy[*].arn)
}

output "cloudtrail_bucket" {
  description = "Bucket of the account's CloudTrail log files (empty with enable_cloudtrail = false)."
  value       = one(aws_s3_bucket.audit[*].id)
}
