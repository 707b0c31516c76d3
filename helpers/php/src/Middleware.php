<?php

declare(strict_types=1);

namespace CaddySession;

use Psr\Http\Message\ResponseInterface;
use Psr\Http\Message\ServerRequestInterface;
use Psr\Http\Server\MiddlewareInterface;
use Psr\Http\Server\RequestHandlerInterface;

/**
 * PSR-15 middleware: the session goes in the request attribute
 * Session::ATTRIBUTE ("caddySession"), and its changes are added to the
 * response the inner handler returns.
 *
 * This file needs psr/http-server-middleware. It is in a file of its own so
 * that the autoloader loads it only when an app uses the class: plain PHP
 * apps without the PSR packages never touch it.
 */
final class Middleware implements MiddlewareInterface
{
    /** @param array $options as Session::fromHeaders: secrets, maxAge, now, sessionName, maxSize */
    public function __construct(private readonly array $options = [])
    {
    }

    public function process(ServerRequestInterface $request, RequestHandlerInterface $handler): ResponseInterface
    {
        $headers = [];
        foreach (Session::headerNames((string) ($this->options['sessionName'] ?? 'session')) as $name) {
            // getHeader returns every value: a duplicated header did not
            // come from the gateway, and Session refuses a list of two.
            if ($request->hasHeader($name)) {
                $headers[$name] = $request->getHeader($name);
            }
        }
        $session = Session::fromHeaders($headers, $this->options);
        $response = $handler->handle($request->withAttribute(Session::ATTRIBUTE, $session));
        foreach ($session->responseHeaders() as [$name, $value]) {
            $response = $response->withAddedHeader($name, $value);
        }
        $session->markSent();
        return $response;
    }
}
