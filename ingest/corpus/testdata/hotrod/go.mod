module cartograph.local/hotrod

go 1.26

require github.com/jaegertracing/jaeger v1.75.0

replace github.com/Shopify/sarama => github.com/Shopify/sarama v1.33.0
