; winserve's Windows installer, built on Linux by installer/build.py:
;   makensis -WX -DVERSION=... -DPAYLOAD=<folder> -DOUTFILE=<setup.exe> winserve.nsi
; Per-user: no administrator rights, installs into %LOCALAPPDATA%\Programs\winserve.
; The payload holds run.bat, winserve.toml, README.txt and python\ (the embeddable CPython with
; winserve and its packages installed), so nothing is downloaded at install or run time.
; Silent install: setup.exe /S [/D=C:\path]   Silent removal: uninstall.exe /S

Unicode true
Target amd64-unicode
SetCompressor /SOLID lzma
RequestExecutionLevel user

!include "MUI2.nsh"

!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\winserve"

Name "winserve ${VERSION}"
OutFile "${OUTFILE}"
InstallDir "$LOCALAPPDATA\Programs\winserve"
InstallDirRegKey HKCU "${UNINSTALL_KEY}" "InstallLocation"
ShowInstDetails nevershow
ShowUninstDetails nevershow

!define MUI_FINISHPAGE_RUN "$INSTDIR\run.bat"
!define MUI_FINISHPAGE_RUN_TEXT "Start winserve with the demo model"
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

Section "winserve"
  SetOutPath "$INSTDIR"
  File /r "${PAYLOAD}\*.*"
  WriteUninstaller "$INSTDIR\uninstall.exe"
  CreateDirectory "$SMPROGRAMS\winserve"
  CreateShortcut "$SMPROGRAMS\winserve\winserve.lnk" "$INSTDIR\run.bat" "" "$INSTDIR\python\python.exe" 0
  CreateShortcut "$SMPROGRAMS\winserve\winserve settings.lnk" "$INSTDIR\winserve.toml"
  CreateShortcut "$SMPROGRAMS\winserve\Uninstall winserve.lnk" "$INSTDIR\uninstall.exe"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayName" "winserve ${VERSION}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "Publisher" "winserve"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKCU "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoRepair" 1
SectionEnd

Section "Uninstall"
  Delete "$SMPROGRAMS\winserve\winserve.lnk"
  Delete "$SMPROGRAMS\winserve\winserve settings.lnk"
  Delete "$SMPROGRAMS\winserve\Uninstall winserve.lnk"
  RMDir "$SMPROGRAMS\winserve"
  RMDir /r "$INSTDIR\python"
  RMDir /r "$INSTDIR\.venv"
  Delete "$INSTDIR\run.bat"
  Delete "$INSTDIR\README.txt"
  Delete "$INSTDIR\winserve.toml"
  Delete "$INSTDIR\uninstall.exe"
  ; the folder goes if it is empty now; a model or token file the user put there stays
  RMDir "$INSTDIR"
  DeleteRegKey HKCU "${UNINSTALL_KEY}"
SectionEnd
