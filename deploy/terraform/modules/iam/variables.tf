variable "name" {
  description = "Role name prefix, e.g. emporium-prod."
  type        = string
}

variable "cluster_name" {
  description = "EKS cluster the cluster autoscaler may scale (its node groups' ASGs carry its tag)."
  type        = string
}

variable "oidc_provider_arn" {
  description = "IAM OIDC provider of the cluster (eks module)."
  type        = string
}

variable "oidc_issuer" {
  description = "OIDC issuer without https:// (eks module)."
  type        = string
}

variable "app_namespace" {
  description = "Namespace the Emporium workloads run in (the overlay's namespace)."
  type        = string
}

variable "service_accounts" {
  description = "Namespace and name of the Kubernetes service account that assumes each role. Override when the Helm releases or the overlays use other names."
  type = object({
    external_secrets          = optional(object({ namespace = string, name = string }), { namespace = "external-secrets", name = "external-secrets" })
    load_balancer_controller  = optional(object({ namespace = string, name = string }), { namespace = "kube-system", name = "aws-load-balancer-controller" })
    cluster_autoscaler        = optional(object({ namespace = string, name = string }), { namespace = "kube-system", name = "cluster-autoscaler" })
    ebs_csi_driver            = optional(object({ namespace = string, name = string }), { namespace = "kube-system", name = "ebs-csi-controller-sa" })
    workload_service_accounts = optional(list(string), ["identity", "catalog", "inventory", "cart", "ordering", "payments", "notifications", "gateway"])
    backups_service_account   = optional(string, "backup")
  })
  default = {}
}

variable "secrets_name_prefix" {
  description = "Secrets Manager name prefix External Secrets may read (emporium/<env>/)."
  type        = string
}

variable "secrets_kms_key_arn" {
  description = "KMS key of those secrets."
  type        = string
}

variable "invoices_bucket_arn" {
  description = "Invoices bucket (ordering reads and writes invoice PDFs)."
  type        = string
}

variable "backups_bucket_arn" {
  description = "Backups bucket (the backup CronJob writes dumps, the restore Job reads them)."
  type        = string
}

variable "rds_resource_id" {
  description = "DbiResourceId of the RDS instance: the backups role logs in to it with IAM database authentication."
  type        = string
}

variable "backup_db_user" {
  description = "PostgreSQL role the backup Jobs log in as with an IAM token (made by scripts/bootstrap-databases.sh: rds_iam + pg_read_all_data)."
  type        = string
  default     = "emporium_backup"
}

variable "s3_kms_key_arn" {
  description = "KMS key of both buckets."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
