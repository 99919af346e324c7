output "region" {
  description = "AWS region of the environment."
  value       = data.aws_region.current.name
}

output "cluster_name" {
  description = "EKS cluster name: aws eks update-kubeconfig --name <this>; cluster-autoscaler --node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,k8s.io/cluster-autoscaler/<this>."
  value       = module.eks.cluster_name
}

output "cluster_endpoint" {
  description = "Kubernetes API URL."
  value       = module.eks.cluster_endpoint
}

output "oidc_provider_arn" {
  description = "IAM OIDC provider of the cluster (for IRSA roles made outside this stack)."
  value       = module.eks.oidc_provider_arn
}

output "vpc_id" {
  description = "VPC id: the AWS Load Balancer Controller's vpcId value (it cannot read it from IMDS, which pods cannot reach)."
  value       = module.vpc.vpc_id
}

output "nat_public_ips" {
  description = "Egress addresses (allow-list them at the SMTP relay and the payment provider)."
  value       = module.vpc.nat_public_ips
}

output "image_repository" {
  description = "ECR repository of the Emporium image: the overlay's `images: [{name: emporium, newName: <this>}]`."
  value       = data.aws_ecr_repository.emporium.repository_url
}

output "irsa_role_arns" {
  description = "eks.amazonaws.com/role-arn annotation value per service account: external-secrets, load-balancer-controller, cluster-autoscaler, ebs-csi-driver, workload (every Emporium process), backups (backup Jobs)."
  value       = module.iam.role_arns
}

output "irsa_service_accounts" {
  description = "The service account (system:serviceaccount:<namespace>:<name>) each IRSA role trusts."
  value       = module.iam.service_account_subjects
}

output "secret_names" {
  description = "Secrets Manager names by key (emporium/<environment>/<key>): the ExternalSecrets' remoteRef.key values."
  value       = module.secrets.secret_names
}

output "postgres_address" {
  description = "RDS PostgreSQL host (the database URLs in Secrets Manager already contain it)."
  value       = module.rds.address
}

output "postgres_master_secret_arn" {
  description = "Secret holding the RDS master password (managed and rotated by RDS); read only by deploy/terraform/scripts/bootstrap-databases.sh."
  value       = module.rds.master_user_secret_arn
}

output "redis_primary_endpoint" {
  description = "ElastiCache primary endpoint (TLS on 6379)."
  value       = module.elasticache.primary_endpoint
}

output "rabbitmq_amqp_endpoint" {
  description = "Amazon MQ AMQPS endpoint."
  value       = module.mq.amqp_endpoint
}

output "rabbitmq_management_url" {
  description = "RabbitMQ management console (from inside the VPC)."
  value       = module.mq.management_url
}

output "invoices_bucket" {
  description = "Bucket of the invoice PDFs."
  value       = module.s3.invoices_bucket
}

output "backups_bucket" {
  description = "Bucket of the logical backups: scripts/backup-postgres.sh s3://<this>/<date>/."
  value       = module.s3.backups_bucket
}

output "s3_kms_key_arn" {
  description = "KMS key of the invoices and backups buckets (scripts/backup-postgres.sh S3_KMS_KEY_ID)."
  value       = module.s3.kms_key_arn
}

output "kubeconfig_command" {
  description = "Points kubectl at the cluster."
  value       = "aws eks update-kubeconfig --region ${data.aws_region.current.name} --name ${module.eks.cluster_name} --alias ${module.eks.cluster_name}"
}

output "overlay_values" {
  description = "Everything the Kubernetes overlay of this environment needs, in one object (`terraform output -json overlay_values`)."
  value = {
    environment        = var.environment
    region             = data.aws_region.current.name
    namespace          = var.app_namespace
    cluster_name       = module.eks.cluster_name
    vpc_id             = module.vpc.vpc_id
    image_repository   = data.aws_ecr_repository.emporium.repository_url
    secret_name_prefix = module.secrets.name_prefix
    secret_names       = module.secrets.secret_names
    irsa_role_arns     = module.iam.role_arns
    invoices_bucket    = module.s3.invoices_bucket
    backups_bucket     = module.s3.backups_bucket
    s3_kms_key_arn     = module.s3.kms_key_arn
  }
}
