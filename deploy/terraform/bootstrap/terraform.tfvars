# One bootstrap per AWS account. The environments must use the same region.
region = "eu-central-1"

# owner/name of the GitHub repository whose Actions push images and deploy (creates the role
# emporium-ci-deploy, output ci_deploy_role_arn); empty: no CI role.
github_repository = ""

# Other roles allowed to push images, e.g. a Jenkins agent's: ["arn:aws:iam::111122223333:role/jenkins-agent"].
ecr_push_principal_arns = []
