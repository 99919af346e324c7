# Settings of the staging environment that depend on the AWS account; the sizes are in main.tf.
region             = "eu-central-1"
backup_region      = "eu-west-1"
availability_zones = ["eu-central-1a", "eu-central-1b", "eu-central-1c"]

# IAM roles given cluster-admin, e.g. the CI deploy role and the operators' SSO role:
#   ["arn:aws:iam::111122223333:role/emporium-ci-deploy", "arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123456789abcdef"]
eks_admin_principal_arns = []

# Public API endpoint, limited to these addresses (the CI runners' egress); empty keeps it private.
eks_public_access_cidrs = []
