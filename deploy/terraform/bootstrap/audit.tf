# Account-wide audit trail: every management API call in every region (who changed what, from
# where), kept in its own bucket and searchable in CloudWatch Logs for alarms. Off when the
# account already has an organization trail (enable_cloudtrail = false).
locals {
  trail_name   = "emporium-audit"
  trail_arn    = "arn:${local.partition}:cloudtrail:${var.region}:${local.account_id}:trail/${local.trail_name}"
  trail_bucket = "emporium-cloudtrail-${local.account_id}-${var.region}"
  trail_logs   = "/aws/cloudtrail/${local.trail_name}"
}

data "aws_iam_policy_document" "audit_kms" {
  #checkov:skip=CKV_AWS_109:A key policy's Resource "*" means this key only; the account root keeps administration so the key cannot become unmanageable
  #checkov:skip=CKV_AWS_111:A key policy's Resource "*" means this key only; CloudTrail may only encrypt for this account's trail
  #checkov:skip=CKV_AWS_356:A key policy's Resource "*" means this key only
  statement {
    sid       = "AccountAdministration"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudTrailEncrypts"
    actions   = ["kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }
    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:aws:cloudtrail:arn"
      values   = ["arn:${local.partition}:cloudtrail:*:${local.account_id}:trail/*"]
    }
  }

  statement {
    sid       = "AccountReadsTheLogs"
    actions   = ["kms:Decrypt", "kms:ReEncryptFrom"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    condition {
      test     = "StringEquals"
      variable = "kms:CallerAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:aws:cloudtrail:arn"
      values   = ["arn:${local.partition}:cloudtrail:*:${local.account_id}:trail/*"]
    }
  }

  statement {
    sid       = "CloudWatchLogs"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:${local.trail_logs}"]
    }
  }
}

resource "aws_kms_key" "audit" {
  count                   = var.enable_cloudtrail ? 1 : 0
  description             = "CloudTrail ${local.trail_name}: log files and their CloudWatch Logs copy"
  deletion_window_in_days = 30
  enable_key_rotation     = true
  policy                  = data.aws_iam_policy_document.audit_kms.json
}

resource "aws_kms_alias" "audit" {
  count         = var.enable_cloudtrail ? 1 : 0
  name          = "alias/emporium-audit"
  target_key_id = aws_kms_key.audit[0].key_id
}

resource "aws_s3_bucket" "audit" {
  #checkov:skip=CKV_AWS_144:The trail covers every region already; its files are integrity-validated and versioned, a second copy in another region is left to an organization trail
  #checkov:skip=CKV2_AWS_62:Nothing reacts to new log files; alarms run on the CloudWatch Logs copy
  count  = var.enable_cloudtrail ? 1 : 0
  bucket = local.trail_bucket
}

resource "aws_s3_bucket_ownership_controls" "audit" {
  count  = var.enable_cloudtrail ? 1 : 0
  bucket = aws_s3_bucket.audit[0].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "audit" {
  count                   = var.enable_cloudtrail ? 1 : 0
  bucket                  = aws_s3_bucket.audit[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "audit" {
  count  = var.enable_cloudtrail ? 1 : 0
  bucket = aws_s3_bucket.audit[0].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "audit" {
  count  = var.enable_cloudtrail ? 1 : 0
  bucket = aws_s3_bucket.audit[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.audit[0].arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_logging" "audit" {
  count         = var.enable_cloudtrail ? 1 : 0
  bucket        = aws_s3_bucket.audit[0].id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "cloudtrail/"
}

resource "aws_s3_bucket_lifecycle_configuration" "audit" {
  count  = var.enable_cloudtrail ? 1 : 0
  bucket = aws_s3_bucket.audit[0].id
  rule {
    id     = "archive-then-expire-audit-logs"
    status = "Enabled"
    filter {}
    transition {
      days          = 90
      storage_class = "GLACIER_IR"
    }
    expiration {
      days = var.audit_log_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
  depends_on = [aws_s3_bucket_versioning.audit]
}

data "aws_iam_policy_document" "audit_bucket" {
  count = var.enable_cloudtrail ? 1 : 0

  statement {
    sid       = "CloudTrailAclCheck"
    actions   = ["s3:GetBucketAcl"]
    resources = [aws_s3_bucket.audit[0].arn]
    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }
  }

  statement {
    sid       = "CloudTrailWrite"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.audit[0].arn}/AWSLogs/${local.account_id}/*"]
    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "s3:x-amz-acl"
      values   = ["bucket-owner-full-control"]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.audit[0].arn, "${aws_s3_bucket.audit[0].arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "audit" {
  count      = var.enable_cloudtrail ? 1 : 0
  bucket     = aws_s3_bucket.audit[0].id
  policy     = data.aws_iam_policy_document.audit_bucket[0].json
  depends_on = [aws_s3_bucket_public_access_block.audit]
}

resource "aws_cloudwatch_log_group" "audit" {
  count             = var.enable_cloudtrail ? 1 : 0
  name              = local.trail_logs
  retention_in_days = 365
  kms_key_id        = aws_kms_key.audit[0].arn
}

data "aws_iam_policy_document" "cloudtrail_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }
  }
}

resource "aws_iam_role" "cloudtrail_logs" {
  count              = var.enable_cloudtrail ? 1 : 0
  name               = "emporium-cloudtrail-logs"
  assume_role_policy = data.aws_iam_policy_document.cloudtrail_assume.json
}

data "aws_iam_policy_document" "cloudtrail_logs" {
  count = var.enable_cloudtrail ? 1 : 0

  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.audit[0].arn}:log-stream:*"]
  }
}

resource "aws_iam_role_policy" "cloudtrail_logs" {
  count  = var.enable_cloudtrail ? 1 : 0
  name   = "write-trail-to-logs"
  role   = aws_iam_role.cloudtrail_logs[0].id
  policy = data.aws_iam_policy_document.cloudtrail_logs[0].json
}

resource "aws_cloudtrail" "audit" {
  #checkov:skip=CKV_AWS_252:Alerting runs on the CloudWatch Logs copy (metric filters and alarms); an SNS notice per delivered log file would only be noise
  count                         = var.enable_cloudtrail ? 1 : 0
  name                          = local.trail_name
  s3_bucket_name                = aws_s3_bucket.audit[0].id
  kms_key_id                    = aws_kms_key.audit[0].arn
  is_multi_region_trail         = true
  include_global_service_events = true
  enable_log_file_validation    = true
  cloud_watch_logs_group_arn    = "${aws_cloudwatch_log_group.audit[0].arn}:*"
  cloud_watch_logs_role_arn     = aws_iam_role.cloudtrail_logs[0].arn

  event_selector {
    read_write_type           = "All"
    include_management_events = true
  }

  depends_on = [aws_s3_bucket_policy.audit, aws_iam_role_policy.cloudtrail_logs]
}
