variable "cluster_name" {
  description = "EKS cluster name, e.g. emporium-prod."
  type        = string
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the control plane and the node groups. Upgrade one minor at a time, and stay within EKS standard support: extended support costs six times the control-plane price."
  type        = string
  default     = "1.33"
}

variable "vpc_id" {
  description = "VPC the cluster lives in."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets (one per zone) for the control plane's network interfaces and the nodes."
  type        = list(string)
}

variable "endpoint_public_access" {
  description = "Whether the Kubernetes API is reachable from the internet (only from public_access_cidrs). false: reachable only inside the VPC (a VPN, a bastion or a CI runner in the VPC)."
  type        = bool
  default     = false
}

variable "public_access_cidrs" {
  description = "Where the public API endpoint may be called from (office, VPN egress, CI runners). Never 0.0.0.0/0."
  type        = list(string)
  default     = []

  validation {
    condition     = !contains(var.public_access_cidrs, "0.0.0.0/0")
    error_message = "public_access_cidrs must not contain 0.0.0.0/0: list the addresses that administer the cluster."
  }
}

variable "admin_principal_arns" {
  description = "IAM roles or users given cluster-admin through EKS access entries (the CI deploy role, the operators' role)."
  type        = list(string)
  default     = []
}

variable "node_groups" {
  description = "Managed node groups by name. capacity_type ON_DEMAND or SPOT; ami_type AL2023_x86_64_STANDARD, or AL2023_ARM_64_STANDARD for Graviton instance types (the image is multi-arch); labels and taints are applied to the nodes."
  type = map(object({
    instance_types = list(string)
    capacity_type  = optional(string, "ON_DEMAND")
    ami_type       = optional(string, "AL2023_x86_64_STANDARD")
    min_size       = number
    max_size       = number
    desired_size   = number
    disk_size_gib  = optional(number, 50)
    labels         = optional(map(string), {})
    taints = optional(list(object({
      key    = string
      value  = string
      effect = string
    })), [])
  }))
}

variable "log_retention_days" {
  description = "Days the control-plane logs are kept."
  type        = number
  default     = 365
}

variable "enable_ebs_csi_driver" {
  description = "Install the EBS CSI driver add-on (volumes for the monitoring stack's PersistentVolumeClaims)."
  type        = bool
  default     = true
}

variable "ebs_csi_role_arn" {
  description = "IRSA role of the EBS CSI driver add-on (from the iam module)."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
