# Run once per AWS account, before any environment, with local state (there is no bucket yet).
# See docs/deploy.md, "Terraform for AWS", step 1.
terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.70"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project   = "emporium"
      Component = "terraform-bootstrap"
      ManagedBy = "terraform"
    }
  }
}
