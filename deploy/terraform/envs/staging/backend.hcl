# S3 + DynamoDB state of the staging environment (bucket, table and key from ../../bootstrap).
key            = "emporium/staging/terraform.tfstate"
region         = "eu-central-1"
dynamodb_table = "emporium-terraform-locks"
encrypt        = true
