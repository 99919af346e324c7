output "region" {
  description = "AWS region."
  value       = module.emporium.region
}

output "cluster_name" {
  description = "EKS cluster name."
  value       = module.emporium.cluster_name
}

output "cluster_endpoint" {
  description = "Kubernetes API URL."
  value       = module.emporium.cluster_endpoint
}

output "kubeconfig_command" {
  description = "Points kubectl at the cluster."
  value       = module.emporium.kubeconfig_command
}

output "vpc_id" {
  description = "VPC id (AWS Load Balancer Controller vpcId)."
  value       = module.emporium.vpc_id
}

output "nat_public_ips" {
  description = "Egress addresses to allow-list at the SMTP relay and the payment provider."
  value       = module.emporium.nat_public_ips
}

output "image_repository" {
  description = "ECR repository of the image (the overlay's images: newName)."
  value       = module.emporium.image_repository
}

output "irsa_role_arns" {
  description = "IRSA role ARN per service account."
  value       = module.emporium.irsa_role_arns
}

output "irsa_service_accounts" {
  description = "The service accounts each IRSA role trusts."
  value       = module.emporium.irsa_service_accounts
}

output "secret_names" {
  description = "Secrets Manager names the ExternalSecrets read."
  value       = module.emporium.secret_names
}

output "postgres_address" {
  description = "RDS PostgreSQL host."
  value       = module.emporium.postgres_address
}

output "postgres_master_secret_arn" {
  description = "RDS-managed master password secret (database bootstrap only)."
  value       = module.emporium.postgres_master_secret_arn
}

output "redis_primary_endpoint" {
  description = "ElastiCache primary endpoint."
  value       = module.emporium.redis_primary_endpoint
}

output "rabbitmq_amqp_endpoint" {
  description = "Amazon MQ AMQPS endpoint."
  value       = module.emporium.rabbitmq_amqp_endpoint
}

output "rabbitmq_management_url" {
  description = "RabbitMQ management console."
  value       = module.emporium.rabbitmq_management_url
}

output "invoices_bucket" {
  description = "Invoices bucket."
  value       = module.emporium.invoices_bucket
}

output "backups_bucket" {
  description = "Logical backups bucket."
  value       = module.emporium.backups_bucket
}

output "s3_kms_key_arn" {
  description = "KMS key of the buckets (backup-postgres.sh S3_KMS_KEY_ID)."
  value       = module.emporium.s3_kms_key_arn
}

output "overlay_values" {
  description = "Everything the Kubernetes overlay needs, in one object."
  value       = module.emporium.overlay_values
}
