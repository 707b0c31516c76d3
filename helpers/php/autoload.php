<?php

// For use without Composer: require this file and the CaddySession classes
// load on first use (PSR-4, as composer.json declares). Middleware.php is
// only loaded when the Middleware class is used, so the PSR-15 interfaces
// need to be installed only by apps that use it.
spl_autoload_register(static function (string $class): void {
    $prefix = 'CaddySession\\';
    if (strncmp($class, $prefix, strlen($prefix)) !== 0) {
        return;
    }
    $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
    if (is_file($file)) {
        require $file;
    }
});
