resource "aws_security_group" "this" {
  name        = "${var.name}-rabbitmq"
  description = "Amazon MQ (RabbitMQ) of ${var.name}: AMQPS and the management API from the EKS cluster only, no egress"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-rabbitmq" })
}

resource "aws_vpc_security_group_ingress_rule" "amqps" {
  count                        = length(var.allowed_security_group_ids)
  security_group_id            = aws_security_group.this.id
  description                  = "AMQP over TLS from the EKS cluster security group"
  ip_protocol                  = "tcp"
  from_port                    = 5671
  to_port                      = 5671
  referenced_security_group_id = var.allowed_security_group_ids[count.index]
}

resource "aws_vpc_security_group_ingress_rule" "management" {
  count                        = length(var.allowed_security_group_ids)
  security_group_id            = aws_security_group.this.id
  description                  = "RabbitMQ management API (HTTPS) from the EKS cluster security group, for tooling and the Prometheus exporter"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = var.allowed_security_group_ids[count.index]
}

# Amazon MQ forbids commas, colons and equal signs; letters and digits are also URL-safe.
resource "random_password" "broker" {
  length  = 40
  special = false
}

# RabbitMQ brokers have general logs only; audit logs exist for ActiveMQ alone.
#trivy:ignore:AVD-AWS-0070
resource "aws_mq_broker" "this" {
  #checkov:skip=CKV_AWS_209:Amazon MQ for RabbitMQ encrypts at rest with an AWS-owned KMS key only; customer managed keys are supported for ActiveMQ, not RabbitMQ
  broker_name                = var.name
  engine_type                = "RabbitMQ"
  engine_version             = var.engine_version
  host_instance_type         = var.instance_type
  deployment_mode            = var.cluster ? "CLUSTER_MULTI_AZ" : "SINGLE_INSTANCE"
  subnet_ids                 = var.cluster ? var.subnet_ids : [var.subnet_ids[0]]
  security_groups            = [aws_security_group.this.id]
  publicly_accessible        = false
  auto_minor_version_upgrade = true
  apply_immediately          = false

  encryption_options {
    use_aws_owned_key = true
  }

  logs {
    general = true
  }

  maintenance_window_start_time {
    day_of_week = var.maintenance_day
    time_of_day = var.maintenance_time
    time_zone   = "UTC"
  }

  user {
    username = var.username
    password = random_password.broker.result
  }

  tags = var.tags
}
