output "primary_endpoint" {
  description = "Host name of the primary (follows a failover)."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "port" {
  description = "Redis port (TLS only)."
  value       = aws_elasticache_replication_group.this.port
}

output "redis_url" {
  description = "rediss:// URL with the AUTH token, for REDIS_URL."
  value       = "rediss://:${random_password.auth.result}@${aws_elasticache_replication_group.this.primary_endpoint_address}:${aws_elasticache_replication_group.this.port}"
  sensitive   = true
}

output "security_group_id" {
  description = "Security group of the cache."
  value       = aws_security_group.this.id
}
