# S3 + DynamoDB state of the prod environment (bucket, table and key from ../../bootstrap).
key            = "emporium/prod/terraform.tfstate"
region         = "eu-central-1"
dynamodb_table = "emporium-terraform-locks"
encrypt        = true
