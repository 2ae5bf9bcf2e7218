# embed.cmake — turns the store's Lua scripts into C string literals.
#
#   cmake -DLUA_DIR=<this folder> -DSCRIPTS=create,get,... -DPIECES=fence,...
#         -DOUT=<header> -P embed.cmake
#
# Each <name>.lua in SCRIPTS becomes `static const char LUA_<NAME>[]` in OUT,
# the header store_link.c includes (supervisor/CMakeLists.txt runs this at build
# time, and again whenever a listed .lua changes). Redis runs the text as it
# is in the file, comments included, with one composition step: a line
#
#   --#include fence.lua
#
# is replaced by the lines of that file (of this folder). The pieces spliced in
# this way (PIECES: fence.lua, each_item.lua) are not scripts of their own; a
# piece includes nothing. The directive is a Lua comment, so every file here
# stays valid Lua on its own.
#
# Plain CMake on purpose: the build needs nothing beyond what deploy/setup.sh
# installs.
cmake_minimum_required(VERSION 3.18)

foreach(var LUA_DIR SCRIPTS PIECES OUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "embed.cmake: -D${var}=... is required")
  endif()
endforeach()

# text = the file, each `--#include <piece>` line replaced by the piece.
function(sf_lua_read name text_var)
  file(READ "${LUA_DIR}/${name}" text)
  set(text "\n${text}") # so that every line, the first too, follows a newline
  while(text MATCHES "\n--#include ([^\n]*)")
    set(line "--#include ${CMAKE_MATCH_1}")
    string(STRIP "${CMAKE_MATCH_1}" piece)
    string(REGEX REPLACE "\\.lua$" "" stem "${piece}")
    if(NOT stem IN_LIST pieces OR NOT EXISTS "${LUA_DIR}/${piece}")
      # A piece missing from the list would not be a dependency of the build.
      message(FATAL_ERROR "${name}: `${line}`: not a piece (SF_LUA_PIECES, supervisor/CMakeLists.txt)")
    endif()
    file(READ "${LUA_DIR}/${piece}" body)
    if("\n${body}" MATCHES "\n--#include ")
      message(FATAL_ERROR "${piece} (included by ${name}) includes another file: pieces do not")
    endif()
    string(REGEX REPLACE "\n$" "" body "${body}")
    string(REPLACE "\n${line}" "\n${body}" text "${text}")
  endwhile()
  string(SUBSTRING "${text}" 1 -1 text)
  set(${text_var} "${text}" PARENT_SCOPE)
endfunction()

set(header "/* Generated from supervisor/lua/<name>.lua by supervisor/lua/embed.cmake: edit those. */\n")
string(APPEND header "#ifndef SF_LUA_SCRIPTS_H\n#define SF_LUA_SCRIPTS_H\n")
string(REPLACE "," ";" names "${SCRIPTS}")
string(REPLACE "," ";" pieces "${PIECES}")
foreach(name IN LISTS names)
  sf_lua_read("${name}.lua" text)
  if(NOT text MATCHES "\n$")
    string(APPEND text "\n")
  endif()
  # A C string literal, one line of the script per line of the header.
  string(REPLACE "\\" "\\\\" text "${text}")
  string(REPLACE "\"" "\\\"" text "${text}")
  string(REPLACE "?" "\\?" text "${text}") # no trigraphs
  string(REPLACE "\t" "\\t" text "${text}")
  string(REGEX REPLACE "\n$" "" text "${text}")
  string(REPLACE "\n" "\\n\"\n    \"" text "${text}")
  string(TOUPPER "${name}" upper)
  string(APPEND header "\n/* ${name}.lua */\nstatic const char LUA_${upper}[] =\n    \"${text}\\n\";\n")
endforeach()
string(APPEND header "\n#endif\n")
file(WRITE "${OUT}" "${header}")
