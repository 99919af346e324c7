output "broker_id" {
  description = "Amazon MQ broker id."
  value       = aws_mq_broker.this.id
}

output "amqp_endpoint" {
  description = "amqps://host:5671 of the broker (a cluster's endpoint balances across its nodes)."
  value       = aws_mq_broker.this.instances[0].endpoints[0]
}

output "management_url" {
  description = "RabbitMQ management console URL (reachable from inside the VPC)."
  value       = aws_mq_broker.this.instances[0].console_url
}

output "amqp_url" {
  description = "amqps:// URL with the application's credentials and the default vhost, for AMQP_URL."
  value = format("amqps://%s:%s@%s/%%2f",
    var.username,
    random_password.broker.result,
    trimprefix(aws_mq_broker.this.instances[0].endpoints[0], "amqps://"),
  )
  sensitive = true
}

output "security_group_id" {
  description = "Security group of the broker."
  value       = aws_security_group.this.id
}
