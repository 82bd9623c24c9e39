"""The kernel: the error type and the API error handler, request context (channel, correlation
id), the client address, API parsing, pagination and schema helpers, form styling. No models;
imports nothing of the project above it."""
