<?php

declare(strict_types=1);

namespace CaddySession;

/**
 * A JSON object in a raw tree. PHP arrays cannot tell {} from [], and turn
 * the key "1" into the integer 1: this keeps objects apart from arrays, and
 * every key is read back with (string).
 */
final class RawObject
{
    /** @param array<array-key, mixed> $members key => raw value */
    public function __construct(public array $members = [])
    {
    }
}
