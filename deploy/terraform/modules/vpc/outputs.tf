output "vpc_id" {
  description = "The VPC's id (the AWS Load Balancer Controller's --aws-vpc-id)."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "The VPC's IPv4 range."
  value       = aws_vpc.this.cidr_block
}

output "public_subnet_ids" {
  description = "Public subnets, one per zone (internet-facing load balancers)."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Private subnets, one per zone (EKS nodes and pods)."
  value       = aws_subnet.private[*].id
}

output "data_subnet_ids" {
  description = "Isolated subnets, one per zone (RDS, ElastiCache, Amazon MQ)."
  value       = aws_subnet.data[*].id
}

output "nat_public_ips" {
  description = "Egress addresses of the cluster (allow-list them at the SMTP relay or payment provider)."
  value       = aws_eip.nat[*].public_ip
}

output "availability_zones" {
  description = "The three zones the subnets are in."
  value       = local.azs
}
