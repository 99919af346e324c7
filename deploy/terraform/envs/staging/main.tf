# Staging: production's shape at a smaller size (NAT per zone, Redis failover, one broker,
# single-AZ PostgreSQL), so that what passes here behaves the same in prod.
module "emporium" {
  source = "../../stack"
  providers = {
    aws               = aws
    aws.backup_region = aws.backup_region
  }

  environment        = "staging"
  app_namespace      = "emporium-staging"
  availability_zones = var.availability_zones
  vpc_cidr           = "10.20.0.0/16"
  nat_gateway_mode   = "per_az"

  kubernetes_version         = "1.33"
  eks_endpoint_public_access = length(var.eks_public_access_cidrs) > 0
  eks_public_access_cidrs    = var.eks_public_access_cidrs
  eks_admin_principal_arns   = var.eks_admin_principal_arns
  node_groups = {
    general = {
      instance_types = ["m6i.large", "m6a.large"]
      min_size       = 3
      max_size       = 6
      desired_size   = 3
    }
  }

  rds = {
    instance_class = "db.t4g.large"
    multi_az       = false
  }

  redis = {
    node_type = "cache.t4g.medium"
    replicas  = 1
  }

  mq = {
    instance_type = "mq.m5.large"
    cluster       = false
  }

  log_retention_days           = 365
  secrets_recovery_window_days = 30
  smtp_url                     = var.smtp_url
}
