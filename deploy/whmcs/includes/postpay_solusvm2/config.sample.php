<?php
/**
 * Copy to config.php (same folder) and fill in. Keep config.php readable by the web server only.
 */
return [
    // Where WHMCS reaches the postpay signup service (server to server; may be an internal address).
    'url' => 'https://signup.example.com',
    // The same value as POSTPAY_PANEL_SHARED_SECRET on the postpay side.
    'shared_secret' => 'change-me',
    // Seconds to wait for postpay before showing the homepage without the panel.
    'timeout_seconds' => 5,
];
