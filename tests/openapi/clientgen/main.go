// clientgen: a client generated from the gateway's /openapi.json by an independent
// generator (oapi-codegen, from the Go module proxy) calls the signup service.
//
// tests/integration/test_contracts.py generates client/client.gen.go from the live
// document of a gateway with the hello and signup services, then runs
//
//	go run . BASE_URL
//
// which signs up through the generated, typed client (the 201's body decoded into the
// generated SignupOut), sends a body that breaks the declared schema and reads the 422
// as the generated HTTPValidationError, and greets through a path parameter.  It prints
// "generated client: N passed, M failed" and exits 1 on any failure.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"barista/tests/openapi/clientgen/client"

	openapi_types "github.com/oapi-codegen/runtime/types"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: clientgen BASE_URL")
		os.Exit(2)
	}
	c, err := client.NewClientWithResponses(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "clientgen:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	passed, failed := 0, 0
	check := func(what string, ok bool, detail string) {
		if ok {
			passed++
		} else {
			failed++
			fmt.Printf("FAIL %s: %s\n", what, detail)
		}
	}

	in := client.SignupPostSignupJSONRequestBody{Email: openapi_types.Email("gen@example.com")}
	created, err := c.SignupPostSignupWithResponse(ctx, in)
	check("signup", err == nil && created.StatusCode() == 201 && created.JSON201 != nil &&
		string(created.JSON201.Email) == "gen@example.com" && created.JSON201.Status == "created",
		fmt.Sprintf("%v %+v", err, created))

	bad, err := c.SignupPostSignupWithBodyWithResponse(ctx, "application/json",
		strings.NewReader(`{"email": "not an address"}`))
	ok := err == nil && bad.StatusCode() == 422 && bad.JSON422 != nil && bad.JSON422.Detail != nil &&
		len(*bad.JSON422.Detail) == 1 && (*bad.JSON422.Detail)[0].Type == "value_error"
	check("signup with a bad address", ok, fmt.Sprintf("%v %s", err, body(bad)))

	hello, err := c.HelloGetHelloNameWithResponse(ctx, "client")
	check("hello", err == nil && hello.StatusCode() == 200 &&
		strings.Contains(string(hello.Body), "hello client"), fmt.Sprintf("%v", err))

	fmt.Printf("generated client: %d passed, %d failed\n", passed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}

func body(r *client.SignupPostSignupResponse) string {
	if r == nil {
		return "<nil>"
	}
	return string(r.Body)
}
