variable "name" {
  description = "Broker name, e.g. emporium-prod."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the broker."
  type        = string
}

variable "subnet_ids" {
  description = "Isolated data subnets, one per zone (a single-instance broker uses the first)."
  type        = list(string)
}

variable "allowed_security_group_ids" {
  description = "Security groups allowed to connect on 5671 (AMQPS) and 443 (management console)."
  type        = list(string)
}

variable "engine_version" {
  description = "RabbitMQ major.minor version; patch releases are applied automatically."
  type        = string
  default     = "3.13"
}

variable "instance_type" {
  description = "Broker size (cost knob): mq.t3.micro in dev; a cluster needs mq.m5.large or bigger."
  type        = string
}

variable "cluster" {
  description = "true: a three-node cluster across three zones (CLUSTER_MULTI_AZ, prod); false: one broker (dev)."
  type        = bool
  default     = false
}

variable "username" {
  description = "The application's broker user."
  type        = string
  default     = "emporium"
}

variable "maintenance_day" {
  description = "Weekly maintenance window: day (UTC)."
  type        = string
  default     = "SUNDAY"
}

variable "maintenance_time" {
  description = "Weekly maintenance window: start time (UTC, HH:MM)."
  type        = string
  default     = "05:30"
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
