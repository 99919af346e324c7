# S3 + DynamoDB state of the dev environment (bucket, table and key from ../../bootstrap).
key            = "emporium/dev/terraform.tfstate"
region         = "eu-central-1"
dynamodb_table = "emporium-terraform-locks"
encrypt        = true
