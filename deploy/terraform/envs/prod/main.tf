# Production: private API endpoint, NAT per zone, Multi-AZ PostgreSQL with backups copied to a
# second region, Redis with a replica in another zone and automatic failover, a three-node RabbitMQ cluster.
module "emporium" {
  source = "../../stack"
  providers = {
    aws               = aws
    aws.backup_region = aws.backup_region
  }

  environment        = "prod"
  app_namespace      = "emporium-prod"
  availability_zones = var.availability_zones
  vpc_cidr           = "10.30.0.0/16"
  nat_gateway_mode   = "per_az"

  kubernetes_version         = "1.33"
  eks_endpoint_public_access = false
  eks_admin_principal_arns   = var.eks_admin_principal_arns
  node_groups = {
    # Baseline capacity for 3 replicas of each of the eight processes, spread over three zones.
    general = {
      instance_types = ["m6i.xlarge", "m6a.xlarge"]
      min_size       = 3
      max_size       = 9
      desired_size   = 3
    }
    # Spot burst capacity the cluster autoscaler adds when the HPAs scale towards 10 pods.
    burst = {
      instance_types = ["m6i.large", "m6a.large", "m5.large", "m5a.large"]
      capacity_type  = "SPOT"
      min_size       = 0
      max_size       = 10
      desired_size   = 0
      labels         = { "emporium.io/capacity" = "spot" }
    }
  }

  rds = {
    instance_class             = "db.r6g.large"
    allocated_storage_gib      = 100
    max_allocated_storage_gib  = 1000
    multi_az                   = true
    backup_retention_days      = 7
    backup_replication_enabled = true
  }

  redis = {
    node_type               = "cache.r7g.large"
    replicas                = 1
    snapshot_retention_days = 7
  }

  mq = {
    instance_type = "mq.m5.large"
    cluster       = true
  }

  s3 = {
    force_destroy = false
  }

  log_retention_days           = 365
  secrets_recovery_window_days = 30
  smtp_url                     = var.smtp_url
}
