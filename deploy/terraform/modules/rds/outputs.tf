output "address" {
  description = "Host name of the instance (the same after a Multi-AZ failover)."
  value       = aws_db_instance.this.address
}

output "port" {
  description = "PostgreSQL port."
  value       = aws_db_instance.this.port
}

output "instance_arn" {
  description = "ARN of the instance."
  value       = aws_db_instance.this.arn
}

output "resource_id" {
  description = "DbiResourceId (IAM database authentication policies use it: rds-db:connect)."
  value       = aws_db_instance.this.resource_id
}

output "master_user_secret_arn" {
  description = "Secrets Manager secret RDS keeps the master user's password in (read only by the database bootstrap)."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "kms_key_arn" {
  description = "KMS key of the storage, snapshots and master password secret."
  value       = aws_kms_key.this.arn
}

output "security_group_id" {
  description = "Security group of the instance."
  value       = aws_security_group.this.id
}

output "context_passwords" {
  description = "Login password of each context's role, by context (goes into its database URL secret)."
  value       = { for c, p in random_password.context : c => p.result }
  sensitive   = true
}

output "database_urls" {
  description = "postgres:// URL of each context's own database, by context (TLS required by the server)."
  value = {
    for c, p in random_password.context :
    c => "postgres://${c}:${p.result}@${aws_db_instance.this.address}:${aws_db_instance.this.port}/${c}?${var.database_url_options}"
  }
  sensitive = true
}
