provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project     = "emporium"
      Environment = "dev"
      ManagedBy   = "terraform"
      Repository  = "emporium/deploy/terraform/envs/dev"
    }
  }
}

# Second region for copies of the RDS automated backups (used when backup replication is on).
provider "aws" {
  alias  = "backup_region"
  region = var.backup_region

  default_tags {
    tags = {
      Project     = "emporium"
      Environment = "dev"
      ManagedBy   = "terraform"
    }
  }
}
