@echo off
rem winserve: double-click to serve a model in the browser.
rem   - Drop a model file (.joblib, .pkl, .skops, .onnx) on this file to serve that model,
rem     or a folder of model files to serve each of them (a changed file is reloaded).
rem   - Otherwise the model named in winserve.toml (next to this file) is served,
rem     or the built-in demo when none is named.
rem Python: the one bundled by the installer (python\ next to this file), else a .venv made
rem here on first start from the "py" launcher or "python" (3.11 or newer), installed from
rem the wheelhouse\ folder when there is one (no internet needed).
setlocal EnableExtensions
pushd "%~dp0"
set "HERE=%~dp0"
set "VENV=%HERE%.venv"
set "PYTHONUTF8=1"
set "MODEL="
if "%~1"=="" goto :find_python
set "MODEL=%~f1"
if exist "%MODEL%" goto :find_python
echo winserve: the model file "%~1" does not exist.
goto :fail

:find_python
if not exist "%HERE%python\python.exe" goto :check_venv
set "PY=%HERE%python\python.exe"
goto :serve

:check_venv
if not exist "%VENV%\Scripts\python.exe" goto :make_venv
"%VENV%\Scripts\python.exe" -c "import winserve" >nul 2>&1
if not errorlevel 1 goto :use_venv
echo winserve: the .venv folder here no longer works (was Python updated or moved?).
echo winserve: making it again ...

:make_venv
py -3 -c "import sys; sys.exit(sys.version_info < (3, 11))" >nul 2>&1
if not errorlevel 1 goto :venv_from_py
python -c "import sys; sys.exit(sys.version_info < (3, 11))" >nul 2>&1
if not errorlevel 1 goto :venv_from_python
goto :no_python

:venv_from_py
call :first_start
py -3 -m venv --clear "%VENV%"
if errorlevel 1 goto :fail
goto :install

:venv_from_python
call :first_start
python -m venv --clear "%VENV%"
if errorlevel 1 goto :fail

:install
if exist "%HERE%wheelhouse\" goto :install_offline
if exist "%HERE%pyproject.toml" goto :install_source
echo winserve: there is no wheelhouse folder next to run.bat.
echo winserve: download the complete winserve zip (or the installer) and start it from there.
goto :fail

:install_offline
"%VENV%\Scripts\python.exe" -m pip install --disable-pip-version-check --no-index ^
    --find-links "%HERE%wheelhouse" "winserve[onnx]"
if errorlevel 1 goto :fail
goto :use_venv

:install_source
"%VENV%\Scripts\python.exe" -m pip install --disable-pip-version-check "%HERE%."
if errorlevel 1 goto :fail

:use_venv
set "PY=%VENV%\Scripts\python.exe"

:serve
if defined MODEL goto :serve_model
"%PY%" -m winserve
goto :served

:serve_model
"%PY%" -m winserve "%MODEL%"

:served
if errorlevel 1 goto :fail
popd
endlocal
exit /b 0

:first_start
echo winserve: first start: setting up Python packages in "%VENV%".
echo winserve: this happens once and takes a minute or two ...
exit /b 0

:no_python
echo.
echo winserve needs Python 3.11 or newer, and none was found on this PC.
echo   - Easiest: use the winserve installer (winserve-...-setup.exe): it brings its own Python.
echo   - Or install Python 3.11 or newer from https://www.python.org/downloads/windows/
echo     (or ask your IT department), then start run.bat again.
echo If typing "python" opens the Microsoft Store, that is only Windows' placeholder for Python.
goto :fail

:fail
echo.
echo winserve did not start; the reason is above. Press a key to close this window.
pause >nul
popd
endlocal
exit /b 1
