# The two commands a newcomer needs:
#   make demo   run the self-contained demonstration
#   make test   install what the tests need (the S3 test server) and run every test
.PHONY: test demo vet bench

test:
	bash scripts/test.sh

demo:
	go run ./cmd/ebreplica demo

vet:
	go vet ./...

bench:
	bash scripts/bench.sh
