<?php

// Stand-ins for the PSR-7/PSR-15 interfaces, declared only when the real
// ones are not installed, with just the methods CaddySession\Middleware
// calls; and a request, response and handler for the test.

declare(strict_types=1);

namespace Psr\Http\Message {
    interface ServerRequestInterface
    {
        public function hasHeader(string $name): bool;

        public function getHeader(string $name): array;

        public function withAttribute(string $name, mixed $value): static;
    }

    interface ResponseInterface
    {
        public function withAddedHeader(string $name, string $value): static;
    }
}

namespace Psr\Http\Server {
    use Psr\Http\Message\ResponseInterface;
    use Psr\Http\Message\ServerRequestInterface;

    interface RequestHandlerInterface
    {
        public function handle(ServerRequestInterface $request): ResponseInterface;
    }

    interface MiddlewareInterface
    {
        public function process(ServerRequestInterface $request, RequestHandlerInterface $handler): ResponseInterface;
    }
}

namespace {
    use Psr\Http\Message\ResponseInterface;
    use Psr\Http\Message\ServerRequestInterface;
    use Psr\Http\Server\RequestHandlerInterface;

    final class TestRequest implements ServerRequestInterface
    {
        private array $attributes = [];

        /** @param array<string, string> $headers */
        public function __construct(private array $headers)
        {
        }

        public function hasHeader(string $name): bool
        {
            return $this->getHeader($name) !== [];
        }

        public function getHeader(string $name): array
        {
            $out = [];
            foreach ($this->headers as $k => $v) {
                if (strtolower($k) === strtolower($name)) {
                    $out[] = $v;
                }
            }
            return $out;
        }

        public function withAttribute(string $name, mixed $value): static
        {
            $r = clone $this;
            $r->attributes[$name] = $value;
            return $r;
        }

        public function getAttribute(string $name): mixed
        {
            return $this->attributes[$name] ?? null;
        }
    }

    final class TestResponse implements ResponseInterface
    {
        private array $headers = [];

        public function withAddedHeader(string $name, string $value): static
        {
            $r = clone $this;
            $r->headers[$name][] = $value;
            return $r;
        }

        public function getHeader(string $name): array
        {
            return $this->headers[$name] ?? [];
        }
    }

    final class TestHandler implements RequestHandlerInterface
    {
        public ?CaddySession\Session $seen = null;

        public function __construct(private $fn)
        {
        }

        public function handle(ServerRequestInterface $request): ResponseInterface
        {
            $this->seen = $request->getAttribute(CaddySession\Session::ATTRIBUTE);
            return ($this->fn)($request);
        }
    }
}
