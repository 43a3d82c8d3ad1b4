// openapi-check validates an OpenAPI 3.1 document with an independent implementation
// (pb33f's libopenapi and libopenapi-validator, not Barista's code), and optionally
// checks recorded HTTP exchanges against it.
//
//	openapi-check DOC.json                      the document against the 3.1 schema
//	openapi-check DOC.json EXCHANGES.json       ... and each exchange against the document
//
// EXCHANGES.json is a list of {"method","url","request_headers","request_body",
// "status","response_headers","response_body"}: each request must be one the document
// allows and each response one it describes (a request answered 422 is one the document
// does not allow: only its response is checked).  Prints one line per problem and exits 1
// when there is any; prints "openapi-check: N passed, 0 failed" otherwise.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	verrors "github.com/pb33f/libopenapi-validator/errors"
)

type exchange struct {
	Method          string            `json:"method"`
	URL             string            `json:"url"`
	RequestHeaders  map[string]string `json:"request_headers"`
	RequestBody     string            `json:"request_body"`
	Status          int               `json:"status"`
	ResponseHeaders map[string]string `json:"response_headers"`
	ResponseBody    string            `json:"response_body"`
}

func report(what string, errs []*verrors.ValidationError) int {
	for _, e := range errs {
		fmt.Printf("%s: %s: %s\n", what, e.Message, e.Reason)
		for _, s := range e.SchemaValidationErrors {
			fmt.Printf("    at %s: %s\n", s.FieldPath+" "+s.KeywordLocation, s.Reason)
		}
	}
	return len(errs)
}

func main() {
	if len(os.Args) < 2 || len(os.Args) > 3 {
		fmt.Fprintln(os.Stderr, "usage: openapi-check DOC.json [EXCHANGES.json]")
		os.Exit(2)
	}
	spec, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "openapi-check:", err)
		os.Exit(2)
	}
	doc, err := libopenapi.NewDocument(spec)
	if err != nil {
		fmt.Println("document: cannot be read:", err)
		os.Exit(1)
	}
	if _, err := doc.BuildV3Model(); err != nil {
		fmt.Println("document: cannot be built:", err)
		os.Exit(1)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		for _, e := range errs {
			fmt.Println("document:", e)
		}
		os.Exit(1)
	}
	failed, passed := 0, 0
	if ok, verrs := v.ValidateDocument(); !ok {
		failed += report("document", verrs)
	} else {
		passed++
	}
	if len(os.Args) == 3 {
		raw, err := os.ReadFile(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, "openapi-check:", err)
			os.Exit(2)
		}
		var xs []exchange
		if err := json.Unmarshal(raw, &xs); err != nil {
			fmt.Fprintln(os.Stderr, "openapi-check: exchanges:", err)
			os.Exit(2)
		}
		for _, x := range xs {
			what := x.Method + " " + x.URL
			req, _ := http.NewRequest(x.Method, x.URL, strings.NewReader(x.RequestBody))
			for k, val := range x.RequestHeaders {
				req.Header.Set(k, val)
			}
			resp := &http.Response{StatusCode: x.Status, Header: http.Header{},
				Body: io.NopCloser(bytes.NewReader([]byte(x.ResponseBody)))}
			for k, val := range x.ResponseHeaders {
				resp.Header.Set(k, val)
			}
			n := 0
			if ok, verrs := v.ValidateHttpRequest(req); !ok && x.Status != 422 {
				n += report(what+" (request)", verrs)
			}
			req2, _ := http.NewRequest(x.Method, x.URL, strings.NewReader(x.RequestBody))
			for k, val := range x.RequestHeaders {
				req2.Header.Set(k, val)
			}
			if ok, verrs := v.ValidateHttpResponse(req2, resp); !ok {
				n += report(fmt.Sprintf("%s (response %d)", what, x.Status), verrs)
			}
			if n > 0 {
				failed++
			} else {
				passed++
			}
		}
	}
	fmt.Printf("openapi-check: %d passed, %d failed\n", passed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}
