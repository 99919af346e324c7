# One bootstrap per AWS account. The environments must use the same region.
region = "eu-central-1"

# The CI role that pushes images, e.g. "arn:aws:iam::111122223333:role/emporium-ci".
ecr_push_principal_arns = []
