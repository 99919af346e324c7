# IAM roles for service accounts (IRSA): each role trusts exactly one Kubernetes service account
# of this cluster, through the cluster's OIDC provider, and grants only what that workload does.
data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition
  sa         = var.service_accounts

  subjects = {
    external-secrets         = ["system:serviceaccount:${local.sa.external_secrets.namespace}:${local.sa.external_secrets.name}"]
    load-balancer-controller = ["system:serviceaccount:${local.sa.load_balancer_controller.namespace}:${local.sa.load_balancer_controller.name}"]
    cluster-autoscaler       = ["system:serviceaccount:${local.sa.cluster_autoscaler.namespace}:${local.sa.cluster_autoscaler.name}"]
    ebs-csi-driver           = ["system:serviceaccount:${local.sa.ebs_csi_driver.namespace}:${local.sa.ebs_csi_driver.name}"]
    workload                 = [for n in local.sa.workload_service_accounts : "system:serviceaccount:${var.app_namespace}:${n}"]
    backups                  = ["system:serviceaccount:${var.app_namespace}:${local.sa.backups_service_account}"]
  }

  descriptions = {
    external-secrets         = "External Secrets Operator: reads ${var.secrets_name_prefix}* from Secrets Manager"
    load-balancer-controller = "AWS Load Balancer Controller: manages the ALB/NLB in front of the gateway"
    cluster-autoscaler       = "Cluster Autoscaler: resizes ${var.cluster_name}'s managed node groups"
    ebs-csi-driver           = "EBS CSI driver: volumes for the monitoring stack's PersistentVolumeClaims"
    workload                 = "Emporium's processes in ${var.app_namespace}: invoice PDFs in the invoices bucket"
    backups                  = "Emporium backup/restore Jobs: PostgreSQL dumps in the backups bucket"
  }
}

data "aws_iam_policy_document" "assume" {
  for_each = local.subjects

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_issuer}:sub"
      values   = each.value
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  for_each             = local.subjects
  name                 = "${var.name}-${each.key}"
  description          = local.descriptions[each.key]
  assume_role_policy   = data.aws_iam_policy_document.assume[each.key].json
  max_session_duration = 3600
  tags                 = var.tags
}

# ---- External Secrets: read this environment's secrets, nothing else ----

data "aws_iam_policy_document" "external_secrets" {
  statement {
    sid = "ReadThisEnvironmentsSecrets"
    actions = [
      "secretsmanager:GetSecretValue",
      "secretsmanager:DescribeSecret",
      "secretsmanager:ListSecretVersionIds",
    ]
    resources = ["arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret:${var.secrets_name_prefix}*"]
  }

  statement {
    sid       = "DecryptThem"
    actions   = ["kms:Decrypt"]
    resources = [var.secrets_kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "external_secrets" {
  name   = "read-secrets"
  role   = aws_iam_role.this["external-secrets"].id
  policy = data.aws_iam_policy_document.external_secrets.json
}

# ---- The application's buckets ----

data "aws_iam_policy_document" "invoices" {
  statement {
    sid       = "InvoiceObjects"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${var.invoices_bucket_arn}/*"]
  }

  statement {
    sid       = "ListInvoices"
    actions   = ["s3:ListBucket"]
    resources = [var.invoices_bucket_arn]
  }

  statement {
    sid       = "BucketKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.s3_kms_key_arn]
  }
}

resource "aws_iam_role_policy" "invoices" {
  name   = "invoices-bucket"
  role   = aws_iam_role.this["workload"].id
  policy = data.aws_iam_policy_document.invoices.json
}

data "aws_iam_policy_document" "backups" {
  # pg_dump logs in as the read-only backup role with a 15-minute IAM token
  # (aws rds generate-db-auth-token): no database password in the cluster for backups.
  statement {
    sid       = "ConnectAsTheBackupRole"
    actions   = ["rds-db:connect"]
    resources = ["arn:${local.partition}:rds-db:${local.region}:${local.account_id}:dbuser:${var.rds_resource_id}/${var.backup_db_user}"]
  }

  statement {
    sid       = "BackupObjects"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${var.backups_bucket_arn}/*"]
  }

  statement {
    sid       = "ListBackups"
    actions   = ["s3:ListBucket"]
    resources = [var.backups_bucket_arn]
  }

  statement {
    sid       = "BucketKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.s3_kms_key_arn]
  }
}

resource "aws_iam_role_policy" "backups" {
  name   = "backups-bucket"
  role   = aws_iam_role.this["backups"].id
  policy = data.aws_iam_policy_document.backups.json
}

# ---- EBS CSI driver: AWS's managed policy ----

resource "aws_iam_role_policy_attachment" "ebs_csi" {
  role       = aws_iam_role.this["ebs-csi-driver"].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
}

# ---- Cluster Autoscaler: read everything it must plan with, scale only this cluster's groups ----

data "aws_iam_policy_document" "cluster_autoscaler" {
  statement {
    sid = "Discover"
    actions = [
      "autoscaling:DescribeAutoScalingGroups",
      "autoscaling:DescribeAutoScalingInstances",
      "autoscaling:DescribeLaunchConfigurations",
      "autoscaling:DescribeScalingActivities",
      "autoscaling:DescribeTags",
      "ec2:DescribeImages",
      "ec2:DescribeInstanceTypes",
      "ec2:DescribeLaunchTemplateVersions",
      "ec2:GetInstanceTypesFromInstanceRequirements",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "DescribeThisClustersNodeGroups"
    actions   = ["eks:DescribeNodegroup"]
    resources = ["arn:${local.partition}:eks:${local.region}:${local.account_id}:nodegroup/${var.cluster_name}/*/*"]
  }

  statement {
    sid = "ScaleThisClustersNodeGroups"
    actions = [
      "autoscaling:SetDesiredCapacity",
      "autoscaling:TerminateInstanceInAutoScalingGroup",
    ]
    # Managed node groups' Auto Scaling groups are named eks-<node group>-<uuid>, and EKS tags
    # them with the cluster's name.
    resources = ["arn:${local.partition}:autoscaling:${local.region}:${local.account_id}:autoScalingGroup:*:autoScalingGroupName/eks-*"]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/k8s.io/cluster-autoscaler/${var.cluster_name}"
      values   = ["owned"]
    }
  }
}

resource "aws_iam_role_policy" "cluster_autoscaler" {
  name   = "cluster-autoscaler"
  role   = aws_iam_role.this["cluster-autoscaler"].id
  policy = data.aws_iam_policy_document.cluster_autoscaler.json
}
