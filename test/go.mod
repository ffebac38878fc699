module github.com/openagents/runtime/test

go 1.26.0

require github.com/openagents/runtime/pkg v0.0.0

replace github.com/openagents/runtime/pkg => ../pkg
