<?php

declare(strict_types=1);

namespace CaddySession;

/**
 * A change the helper refuses. $reason says which:
 *  - SESSION_TOO_LARGE: the data would pass max_size ($size, $maxSize say by how much);
 *  - SESSION_SENT: the session's headers were already sent, the change would be lost;
 *  - SESSION_REVOKE_CONFLICT: the response already revokes another target (one per response).
 */
final class SessionException extends \RuntimeException
{
    public const TOO_LARGE = 'SESSION_TOO_LARGE';
    public const SENT = 'SESSION_SENT';
    public const REVOKE_CONFLICT = 'SESSION_REVOKE_CONFLICT';

    public function __construct(
        public readonly string $reason,
        string $message,
        public readonly int $size = 0,
        public readonly int $maxSize = 0,
    ) {
        parent::__construct($message);
    }
}
