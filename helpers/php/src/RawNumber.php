<?php

declare(strict_types=1);

namespace CaddySession;

/**
 * A JSON number kept as the text it was written with, as the gateway keeps
 * it: 1e3 stays 1e3 and a 20-digit integer stays exact, so sizes are counted
 * as the gateway counts them.
 */
final class RawNumber
{
    public function __construct(public readonly string $text)
    {
    }
}
