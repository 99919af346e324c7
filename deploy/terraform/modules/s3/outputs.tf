output "invoices_bucket" {
  description = "Bucket of the invoice PDFs."
  value       = aws_s3_bucket.invoices.id
}

output "invoices_bucket_arn" {
  description = "ARN of the invoices bucket."
  value       = aws_s3_bucket.invoices.arn
}

output "backups_bucket" {
  description = "Bucket of the logical PostgreSQL backups (scripts/backup-postgres.sh s3://<bucket>/...)."
  value       = aws_s3_bucket.backups.id
}

output "backups_bucket_arn" {
  description = "ARN of the backups bucket."
  value       = aws_s3_bucket.backups.arn
}

output "access_logs_bucket" {
  description = "Bucket of the S3 server access logs."
  value       = aws_s3_bucket.access_logs.id
}

output "kms_key_arn" {
  description = "KMS key the invoices and backups are encrypted with (writers need kms:GenerateDataKey, readers kms:Decrypt)."
  value       = aws_kms_key.this.arn
}
