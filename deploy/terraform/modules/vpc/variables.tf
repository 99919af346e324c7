variable "name" {
  description = "Prefix of every resource name, e.g. emporium-prod."
  type        = string
}

variable "cidr_block" {
  description = "The VPC's IPv4 range (a /16 leaves room for three /20 private, /24 public and /24 data subnets)."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.cidr_block)) && tonumber(split("/", var.cidr_block)[1]) <= 16
    error_message = "cidr_block must be an IPv4 CIDR of /16 or larger."
  }
}

variable "availability_zones" {
  description = "Exactly three availability zones; every subnet tier gets one subnet in each."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) == 3
    error_message = "availability_zones must name exactly three zones."
  }
}

variable "nat_gateway_mode" {
  description = "\"single\": one NAT gateway for all private subnets (cheap, one AZ is a single point of failure for egress); \"per_az\": one per zone (production)."
  type        = string
  default     = "per_az"

  validation {
    condition     = contains(["single", "per_az"], var.nat_gateway_mode)
    error_message = "nat_gateway_mode must be \"single\" or \"per_az\"."
  }
}

variable "cluster_name" {
  description = "EKS cluster name, for the subnet tags the AWS Load Balancer Controller discovers subnets by."
  type        = string
}

variable "flow_log_retention_days" {
  description = "Days the VPC flow logs are kept in CloudWatch Logs."
  type        = number
  default     = 365
}

variable "flow_log_traffic_type" {
  description = "ACCEPT, REJECT or ALL."
  type        = string
  default     = "ALL"
}

variable "tags" {
  description = "Tags added to every resource (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
}
