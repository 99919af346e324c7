terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.70"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
    tls = {
      source  = "hashicorp/tls"
      version = "~> 4.0"
    }
  }

  # Partial configuration: the rest is in backend.hcl, the bucket name comes from the bootstrap
  # (terraform init -backend-config=backend.hcl -backend-config="bucket=<state_bucket>").
  backend "s3" {}
}
