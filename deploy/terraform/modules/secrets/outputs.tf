output "secret_names" {
  description = "Secrets Manager names by key (emporium/<environment>/<key>): what the ExternalSecrets' remoteRef.key use."
  value       = { for k, s in aws_secretsmanager_secret.this : k => s.name }
}

output "secret_arns" {
  description = "Secret ARNs by key."
  value       = { for k, s in aws_secretsmanager_secret.this : k => s.arn }
}

output "name_prefix" {
  description = "Common prefix of the names (emporium/<environment>/)."
  value       = "emporium/${var.environment}/"
}

output "kms_key_arn" {
  description = "KMS key of the secrets (readers need kms:Decrypt through Secrets Manager)."
  value       = aws_kms_key.this.arn
}
