-- One database per context, named after it (as deploy/terraform's bootstrap names them on RDS).
CREATE DATABASE identity;
CREATE DATABASE catalog;
CREATE DATABASE inventory;
CREATE DATABASE cart;
CREATE DATABASE ordering;
CREATE DATABASE payments;
CREATE DATABASE notifications;
