output "repository_url" {
  description = "<account>.dkr.ecr.<region>.amazonaws.com/emporium: the image name the overlays' `images:` entry points at."
  value       = aws_ecr_repository.this.repository_url
}

output "repository_arn" {
  description = "ARN of the repository."
  value       = aws_ecr_repository.this.arn
}

output "registry_id" {
  description = "Registry (account) id, for `aws ecr get-login-password | docker login`."
  value       = aws_ecr_repository.this.registry_id
}
