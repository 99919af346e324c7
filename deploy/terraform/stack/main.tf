# One environment of Emporium on AWS: the network, the cluster, the data stores, the buckets,
# the secrets, the image repository and the IRSA roles, wired together. envs/<env>/ call this
# with their settings.
locals {
  name         = "emporium-${var.environment}"
  cluster_name = "emporium-${var.environment}"
  # Contexts with a database of their own (the gateway has none).
  contexts = ["identity", "catalog", "inventory", "cart", "ordering", "payments", "notifications"]
}

module "vpc" {
  source = "../modules/vpc"

  name                    = local.name
  cidr_block              = var.vpc_cidr
  availability_zones      = var.availability_zones
  nat_gateway_mode        = var.nat_gateway_mode
  cluster_name            = local.cluster_name
  flow_log_retention_days = var.log_retention_days
  tags                    = var.tags
}

module "eks" {
  source = "../modules/eks"

  cluster_name           = local.cluster_name
  kubernetes_version     = var.kubernetes_version
  vpc_id                 = module.vpc.vpc_id
  subnet_ids             = module.vpc.private_subnet_ids
  endpoint_public_access = var.eks_endpoint_public_access
  public_access_cidrs    = var.eks_public_access_cidrs
  admin_principal_arns   = var.eks_admin_principal_arns
  node_groups            = var.node_groups
  log_retention_days     = var.log_retention_days
  enable_ebs_csi_driver  = true
  ebs_csi_role_arn       = module.iam.role_arns["ebs-csi-driver"]
  tags                   = var.tags
}

module "rds" {
  source = "../modules/rds"
  providers = {
    aws               = aws
    aws.backup_region = aws.backup_region
  }

  name                                = local.name
  vpc_id                              = module.vpc.vpc_id
  subnet_ids                          = module.vpc.data_subnet_ids
  allowed_security_group_ids          = [module.eks.cluster_security_group_id]
  contexts                            = local.contexts
  engine_version                      = var.rds.engine_version
  instance_class                      = var.rds.instance_class
  allocated_storage_gib               = var.rds.allocated_storage_gib
  max_allocated_storage_gib           = var.rds.max_allocated_storage_gib
  multi_az                            = var.rds.multi_az
  backup_retention_days               = var.rds.backup_retention_days
  deletion_protection                 = var.rds.deletion_protection
  performance_insights_retention_days = var.rds.performance_insights_days
  monitoring_interval_seconds         = var.rds.monitoring_interval_seconds
  backup_replication_enabled          = var.rds.backup_replication_enabled
  log_retention_days                  = var.log_retention_days
  tags                                = var.tags
}

module "elasticache" {
  source = "../modules/elasticache"

  name                       = local.name
  vpc_id                     = module.vpc.vpc_id
  subnet_ids                 = module.vpc.data_subnet_ids
  allowed_security_group_ids = [module.eks.cluster_security_group_id]
  node_type                  = var.redis.node_type
  replicas                   = var.redis.replicas
  snapshot_retention_days    = var.redis.snapshot_retention_days
  log_retention_days         = var.log_retention_days
  tags                       = var.tags
}

module "mq" {
  source = "../modules/mq"

  name                       = local.name
  vpc_id                     = module.vpc.vpc_id
  subnet_ids                 = module.vpc.data_subnet_ids
  allowed_security_group_ids = [module.eks.cluster_security_group_id]
  instance_type              = var.mq.instance_type
  cluster                    = var.mq.cluster
  tags                       = var.tags
}

module "s3" {
  source = "../modules/s3"

  name                              = local.name
  force_destroy                     = var.s3.force_destroy
  invoice_retention_days            = var.s3.invoice_retention_days
  backup_retention_days             = var.s3.backup_retention_days
  noncurrent_version_retention_days = var.s3.noncurrent_version_retention_days
  access_log_retention_days         = var.log_retention_days
  tags                              = var.tags
}

module "secrets" {
  source = "../modules/secrets"

  environment          = var.environment
  contexts             = local.contexts
  database_urls        = module.rds.database_urls
  redis_url            = module.elasticache.redis_url
  amqp_url             = module.mq.amqp_url
  smtp_url             = var.smtp_url
  recovery_window_days = var.secrets_recovery_window_days
  tags                 = var.tags
}

# The image repository is shared by every environment of the account (one build, promoted by
# digest from staging to prod) and made by ../bootstrap; here it is only looked up.
data "aws_ecr_repository" "emporium" {
  name = var.ecr_repository_name
}

module "iam" {
  source = "../modules/iam"

  name                = local.name
  cluster_name        = module.eks.cluster_name
  oidc_provider_arn   = module.eks.oidc_provider_arn
  oidc_issuer         = module.eks.oidc_issuer
  app_namespace       = var.app_namespace
  secrets_name_prefix = module.secrets.name_prefix
  secrets_kms_key_arn = module.secrets.kms_key_arn
  invoices_bucket_arn = module.s3.invoices_bucket_arn
  backups_bucket_arn  = module.s3.backups_bucket_arn
  s3_kms_key_arn      = module.s3.kms_key_arn
  rds_resource_id     = module.rds.resource_id
  tags                = var.tags
}
