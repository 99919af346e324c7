output "role_arns" {
  description = "IRSA role ARN by workload: external-secrets, load-balancer-controller, cluster-autoscaler, ebs-csi-driver, workload (every Emporium process: emporium-<env>-workload), backups (the eks.amazonaws.com/role-arn annotation of each service account)."
  value       = { for k, r in aws_iam_role.this : k => r.arn }
}

output "service_account_subjects" {
  description = "The service account each role trusts (system:serviceaccount:<namespace>:<name>)."
  value       = local.subjects
}
