# Development: the cheapest shape that still runs the whole system as production does — one NAT
# gateway, spot nodes, single-AZ PostgreSQL, one Redis node, one small broker. Every security
# setting (encryption, TLS, private data subnets, deletion protection) is the same as prod.
module "emporium" {
  source = "../../stack"
  providers = {
    aws               = aws
    aws.backup_region = aws.backup_region
  }

  environment        = "dev"
  app_namespace      = "emporium-dev"
  availability_zones = var.availability_zones
  vpc_cidr           = "10.10.0.0/16"
  nat_gateway_mode   = "single"

  kubernetes_version         = "1.33"
  eks_endpoint_public_access = length(var.eks_public_access_cidrs) > 0
  eks_public_access_cidrs    = var.eks_public_access_cidrs
  eks_admin_principal_arns   = var.eks_admin_principal_arns
  node_groups = {
    general = {
      instance_types = ["t3.large", "t3a.large", "m6i.large"]
      capacity_type  = "SPOT"
      min_size       = 2
      max_size       = 4
      desired_size   = 2
    }
  }

  rds = {
    instance_class        = "db.t4g.medium"
    allocated_storage_gib = 20
    multi_az              = false
  }

  redis = {
    node_type = "cache.t4g.small"
    replicas  = 0
  }

  mq = {
    instance_type = "mq.t3.micro"
    cluster       = false
  }

  s3 = {
    force_destroy = true
  }

  log_retention_days           = 365
  secrets_recovery_window_days = 7
  smtp_url                     = var.smtp_url
}
