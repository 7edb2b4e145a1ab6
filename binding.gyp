# binding.gyp — builds the io_uring addon as build/Release/ringstream.node (Linux only; on
# other systems the target is empty and the loader falls back to node:fs).
{
  "targets": [
    {
      "target_name": "ringstream",
      "conditions": [
        ["OS=='linux'", {
          "sources": ["native/addon.cc", "native/ring.cc"],
          "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
          "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
          "cflags!": ["-fno-exceptions"],
          "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
          "cflags": ["-Wall", "-Wextra", "-Werror", "-fvisibility=hidden"],
          "cflags_cc": ["-std=c++17", "-fno-exceptions", "-Wall", "-Wextra", "-Werror"]
        }, {
          "type": "none"
        }]
      ]
    }
  ]
}
