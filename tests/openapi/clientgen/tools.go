//go:build tools

// The generator this module's test uses, pinned in go.mod: CMake builds it as
// bin/oapi-codegen from here.
package main

import _ "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen"
