package otlp_test

import (
	"context"
	"fmt"
	"log"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.39.0"
)

// Example_sendTraces sets up a Go service to send its traces to cartograph's
// OTLP/gRPC receiver with the OpenTelemetry SDK, as cmd/collector/e2e_test.go
// does with otelhttp and otelgrpc. The exporter connects lazily: nothing is
// sent until the service makes spans.
func Example_sendTraces() {
	ctx := context.Background()
	exp, err := otlptracegrpc.New(ctx,
		otlptracegrpc.WithEndpoint("127.0.0.1:4317"), // cartograph's --otlp-grpc-addr
		otlptracegrpc.WithInsecure())                 // without --tls-cert-file
	if err != nil {
		log.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(
			semconv.ServiceName("checkout"),    // the node's name
			semconv.ServiceNamespace("shop")))) // the box it is drawn in
	defer func() { _ = tp.Shutdown(ctx) }() // flushes the spans still batched
	// Give tp to the instrumentation: otelhttp.WithTracerProvider(tp),
	// otelgrpc.WithTracerProvider(tp), or otel.SetTracerProvider(tp).
	fmt.Println("sending to 127.0.0.1:4317 as shop/checkout")
	// Output: sending to 127.0.0.1:4317 as shop/checkout
}
